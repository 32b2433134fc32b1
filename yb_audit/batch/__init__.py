"""事后审核 (batch audit) of fee-detail files: ``dip-cds audit --fees FILE --stays FILE --output DIR``.

Set-based: the rules become tables and every rule kind is one SQL statement (:mod:`.sql`) that runs
unchanged on DuckDB (embedded, :mod:`.duck`) and Spark (:mod:`.spark`); the outputs are written
once, by DuckDB, from the findings either engine produced (:mod:`.report`).
"""
