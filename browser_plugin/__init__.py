"""The browser plugin: DIP and 智能审核 cards inside any HIS page, with or without a CDS Hooks client.

Three ways in: the panel by script tag (``widget/``, served at ``/plugin/dip-cds.js``), the JSON API
(``POST /plugin/v1/check``, :mod:`browser_plugin.api`) and the browser extension
(``browser-extension/``, built by :mod:`browser_plugin.extension`). ``dip-cds demo-his`` serves a
fictional 医生工作站 that shows all three (:mod:`browser_plugin.demo_his`).
"""
