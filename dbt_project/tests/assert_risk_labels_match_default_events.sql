-- Every known label agrees with the default events visible on run_date: 1 exactly when the customer has a
-- default in (review_date, review_date + 90 days]. Recomputed from staging, independently of the
-- intermediate model's first-default logic.
with

features as (

    select * from {{ ref('fct_credit_features') }}
    where defaulted_90d is not null

),

defaults as (

    select * from {{ ref('stg_risk__default_events') }}

),

expected as (

    select
        features.customer_id,
        features.review_date,
        features.defaulted_90d,
        max(
            case
                when
                    defaults.default_date > features.review_date
                    and defaults.default_date <= features.label_known_on
                    then 1
                else 0
            end
        ) as expected_label
    from features
    left join defaults
        on features.customer_id = defaults.customer_id
    group by features.customer_id, features.review_date, features.defaulted_90d

)

select *
from expected
where defaulted_90d != expected_label
