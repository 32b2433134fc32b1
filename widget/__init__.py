"""The DIP-CDS panel's browser files (``dip-cds.js``, ``dip-cds.css``), shipped as package data so the
service serves them at ``/plugin/dip-cds.js`` from any install. Nothing here runs in Python."""
