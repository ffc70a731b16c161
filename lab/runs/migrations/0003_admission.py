from django.db import migrations, models
from django.db.models.functions import Now


def queued_runs_were_sent(apps, schema_editor):
    """Runs queued before admission existed were sent when they were made: they count as admitted."""
    apps.get_model("runs", "Run").objects.filter(status="queued").update(admitted_at=Now())


class Migration(migrations.Migration):

    dependencies = [
        ('runs', '0002_alter_artifact_kind'),
    ]

    operations = [
        migrations.AddField(
            model_name='run',
            name='admitted_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='run',
            name='devices',
            field=models.PositiveSmallIntegerField(default=1),
        ),
        migrations.AddField(
            model_name='run',
            name='priority',
            field=models.IntegerField(default=0),
        ),
        migrations.AddField(
            model_name='run',
            name='waiting_for',
            field=models.CharField(blank=True, max_length=300),
        ),
        migrations.RunPython(queued_runs_were_sent, migrations.RunPython.noop),
    ]
