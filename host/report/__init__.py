"""Reports from the results database, in one direction: rows -> statistics -> tables and plots -> renderers.

- ``rows``: one :class:`~host.report.rows.ReportRow` per measured (model, device, settings), loaded through
  ResultsDB; ``summary``: the typed accessor of a job's stored summary.
- ``stats`` (comparisons with the baseline), ``recommend``, ``aggregates`` (across policies),
  ``op_breakdown`` (where the time of a call goes), on top of ``host.decision``'s rules.
- ``tables`` and ``plots`` draw from comparisons; ``analysis`` builds the one Analysis a report makes.
- Renderers, each taking that Analysis: ``terminal``, ``markdown``, ``csv_report``, ``html``, ``json_report``.

Nothing here imports a module of a later stage, and nothing imports the command line.
"""
