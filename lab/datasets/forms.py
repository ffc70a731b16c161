from django import forms

from lab.datasets.models import Dataset

FORMATS_HELP = (
    ".txt (documents separated by blank lines), .jsonl, .parquet, .csv, .tsv, or a .zip / .tar.gz "
    "of text files. UTF-8, or UTF-16 with a byte-order mark."
)


class UploadDatasetForm(forms.Form):
    team = forms.TypedChoiceField(coerce=int)
    name = forms.CharField(max_length=200, required=False, help_text="Defaults to the file name.")
    kind = forms.ChoiceField(
        choices=[("", "Detect from the records")] + list(Dataset.Kind.choices), required=False,
        help_text="Text, SFT, preference, classification or eval: told by the fields of the records.",
    )
    file = forms.FileField(allow_empty_file=True, help_text=FORMATS_HELP)

    def __init__(self, *args, teams=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [(t.pk, t.name) for t in teams]


class EditDatasetForm(forms.ModelForm):
    class Meta:
        model = Dataset
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 4})}
        help_texts = {"description": "Markdown: where the data came from, its licence, what it is for."}
