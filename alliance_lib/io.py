"""Reading raw data files (csv, tsv, xlsx, sav, parquet) into the canonical long table."""

__all__: list[str] = []
