"""Problems 1-5 of the homework: each computes its results and writes them for the report."""
