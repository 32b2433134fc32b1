"""dip-cds: a CDS Hooks 2.0 service for DIP (按病种分值付费) payment decision support."""

__version__ = "0.1.0"
