-- As-of guarantee: the feature mart never holds a day after run_date (no look-ahead into later raw data).
select
    store_id,
    sku_id,
    sales_date
from {{ ref('fct_demand_features') }}
where sales_date > {{ run_date_literal() }}
