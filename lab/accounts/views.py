from django.contrib.auth import views as auth_views

from lab.accounts.throttling import retry_after


class LoginView(auth_views.LoginView):
    """Django's login page; while its client or username is throttled (lab/accounts/throttling.py), a 429
    page that says when to try again, without looking at the password."""

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")
        if seconds := retry_after(request, username):
            form = self.get_form_class()(request, initial={"username": username})
            response = self.render_to_response(self.get_context_data(form=form, retry_after=seconds), status=429)
            response["Retry-After"] = str(seconds)
            return response
        return super().post(request, *args, **kwargs)
