from django.db import migrations, models


class Migration(migrations.Migration):
    """The consent page's signature, kept with the contact details (and erased with them)."""

    dependencies = [("trials", "0009_trialevent_changes_requested")]

    operations = [
        migrations.AddField(
            model_name="participantcontact",
            name="signature_name",
            field=models.CharField(blank=True, max_length=200),
        ),
        migrations.AddField(
            model_name="participantcontact",
            name="signed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
