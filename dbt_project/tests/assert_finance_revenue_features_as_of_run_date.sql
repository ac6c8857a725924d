-- As-of guarantee: the revenue feature mart never holds a day after run_date (no look-ahead into
-- postings landed for later days).
select
    business_unit,
    region,
    revenue_date
from {{ ref('fct_revenue_features') }}
where revenue_date > {{ run_date_literal() }}
