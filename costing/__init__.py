"""Cost of a stay: cost so far (FHIR ChargeItems or a HIS endpoint), the price list, draft orders.

Amounts are ``Decimal`` yuan to 2 places. Unknown is ``None`` — never zero by default — and a
price is never invented: what cannot be priced is listed with the reason.
"""

from costing.categories import UNCLASSIFIED, category_names, normalize_category
from costing.his import HisCostClient, HisCostConfig, HisCostError, parse_his_cost
from costing.orders import OrderCost, PricedLine, UnpricedLine, cost_of_orders
from costing.prices import (
    PriceImportError,
    PriceItem,
    PriceList,
    PriceRowError,
    import_prices,
    load_prices,
    read_price_file,
    sample_prices,
)
from costing.so_far import FEE_CATEGORY_EXTENSION, FEE_CATEGORY_SYSTEM, CostSoFar, cost_so_far

__all__ = [
    "FEE_CATEGORY_EXTENSION",
    "FEE_CATEGORY_SYSTEM",
    "UNCLASSIFIED",
    "CostSoFar",
    "HisCostClient",
    "HisCostConfig",
    "HisCostError",
    "OrderCost",
    "PriceImportError",
    "PriceItem",
    "PriceList",
    "PriceRowError",
    "PricedLine",
    "UnpricedLine",
    "category_names",
    "cost_of_orders",
    "cost_so_far",
    "import_prices",
    "load_prices",
    "normalize_category",
    "parse_his_cost",
    "read_price_file",
    "sample_prices",
]
