"""The analyst's surface: the web UI (Datasette), figure timelines, trend charts and the HTML report.

Chart specifications are Vega-Lite JSON files in `charts/`, without data: the dashboard, `monitor figures
--format vega` and `monitor report` each add the rows they show, so all three draw the same chart.
"""
