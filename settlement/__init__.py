"""Batch DIP settlement: ``dip-cds settle`` (point values, payments, reports) and ``dip-cds synth``.

Python API::

    from settlement.config import load_config
    from settlement.run import RunOptions, run_settlement
    report = run_settlement(RunOptions(inputs=[Path("cases.csv")], output=Path("out"),
                                       config=load_config("settle.toml"), period="2025", region="410400"))
    report.result.hospitals, report.result.reconciliation, report.timings

Grouping and per-case pricing come from ``dip_engine.engine.Engine`` (one engine for the hook
services and the batch run); this package owns the period-level money and the reports.
"""
