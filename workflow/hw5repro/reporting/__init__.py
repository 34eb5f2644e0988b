"""From results to the report: tables, figures, provenance and the HTML/LaTeX rendering."""
