-- A defaulted customer is no longer scored: no feature row on or after the customer's first default.
select
    features.customer_id,
    features.review_date,
    defaults.default_date
from {{ ref('fct_credit_features') }} as features
inner join {{ ref('stg_risk__default_events') }} as defaults
    on features.customer_id = defaults.customer_id
where features.review_date >= defaults.default_date
