"""Reporting: plots, tables, drawn images, the TIDE diagnosis files, the run report and
report.html, the augment preview."""
