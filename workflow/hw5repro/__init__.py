"""hw5repro: the logic behind the HW5 reproduction workflow.

One module per concern; the Snakemake rules in ``workflow/rules`` and the thin scripts in
``workflow/scripts`` only wire files to these functions.
"""

__version__ = "0.1.0"
