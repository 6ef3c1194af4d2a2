"""Operator skill reports and timeline exports: HTML, PDF and JSON laid out from the numbers of
`analytics.report` (no number is computed here), and the Plotly figures they share with the
dashboard (`reports.figures`)."""
