-- Reconciliation: per series, the feature mart's revenue adds up to the ledger postings as of run_date
-- (a lost or duplicated join row, or a day outside the grid, shows up here). Daily rounding to cents
-- allows half a cent per day.
with

ledger as (

    select
        business_unit,
        region,
        sum(amount) as ledger_revenue
    from {{ ref('stg_finance__ledger_entries') }}
    group by business_unit, region

),

features as (

    select
        business_unit,
        region,
        sum(revenue) as feature_revenue,
        count(*) as n_days
    from {{ ref('fct_revenue_features') }}
    group by business_unit, region

)

select
    coalesce(ledger.business_unit, features.business_unit) as business_unit,
    coalesce(ledger.region, features.region) as region,
    ledger.ledger_revenue,
    features.feature_revenue
from ledger
full outer join features
    on
        ledger.business_unit = features.business_unit
        and ledger.region = features.region
where
    ledger.ledger_revenue is null
    or features.feature_revenue is null
    or abs(ledger.ledger_revenue - features.feature_revenue) > 0.005 * features.n_days + 0.01
