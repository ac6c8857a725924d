-- Time-correct labels: defaulted_90d is known (not null) exactly when its 90-day window ended on or
-- before run_date, and no row is dated after run_date. Any row returned is a label known before its time
-- or a known label that went missing.
select
    customer_id,
    review_date,
    label_known_on,
    defaulted_90d
from {{ ref('fct_credit_features') }}
where
    review_date > {{ run_date_literal() }}
    or label_known_on != cast(review_date + interval '90 days' as date)
    or (label_known_on > {{ run_date_literal() }} and defaulted_90d is not null)
    or (label_known_on <= {{ run_date_literal() }} and defaulted_90d is null)
