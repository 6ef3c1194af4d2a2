"""The fetal-analytics dashboard: ``streamlit run dashboard/app.py [-- --db PATH]``.

One page per view (Cohort, Scan, Operators, Agreement, Models) under ``dashboard/views/``, at
``/cohort``, ``/scan``, ``/operators``, ``/agreement`` and ``/models``. The database is the one
given after ``--db``, else ``$FETAL_ANALYTICS_DB``, else ``out/demo/demo.duckdb`` where ``make
demo`` has built it, else the shipped ``data/demo.duckdb``; another file can be typed in the
sidebar. It is opened read-only for each request (see `dashboard.data`).
"""

from pathlib import Path

import streamlit as st

from dashboard import ui

VIEWS = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="fetal-analytics", layout="wide")
navigation = st.navigation([
    st.Page(VIEWS / "cohort.py", title="Cohort", url_path="cohort", default=True),
    st.Page(VIEWS / "scan.py", title="Scan", url_path="scan"),
    st.Page(VIEWS / "operators.py", title="Operators", url_path="operators"),
    st.Page(VIEWS / "agreement.py", title="Agreement", url_path="agreement"),
    st.Page(VIEWS / "models.py", title="Models", url_path="models"),
])
ui.database_box()
ui.start_precompute()
drawn = False
with ui.guarded():
    ui.sidebar(navigation.url_path or "cohort")
    drawn = True
if drawn:
    navigation.run()
