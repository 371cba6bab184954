from django.contrib import admin

from surveys.models import Instrument, Wave


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = ["code", "name"]
    readonly_fields = ["code", "name", "definition"]


@admin.register(Wave)
class WaveAdmin(admin.ModelAdmin):
    list_display = ["trial", "index", "day_offset", "window_days"]
    list_filter = ["trial"]
