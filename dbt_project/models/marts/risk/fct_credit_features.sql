-- Training and scoring rows of the credit-risk classifier: one row per (customer_id, review_date) with
-- review_date <= run_date, the features observed on the review date and the label defaulted_90d:
--   1    the customer defaults in (review_date, review_date + 90 days],
--   0    it does not,
--   null the window is not over on run_date (review_date + 90 days > run_date): the outcome is not known
--        yet. Deliberately null even when a default inside the window is already visible: early
--        positives without early negatives would bias the training sample towards defaults.
-- The 90 days equal tabular.label_delay_days of include/use_cases/credit_risk.yaml; change both.
-- Defaults after run_date are invisible (stg_risk__default_events is as of run_date), and the first
-- default date itself is not exposed: it lies after the review date.
{%- set label_window_days = 90 %}
with

reviews as (

    select * from {{ ref('int_risk__credit_reviews') }}

),

with_window as (

    select
        *,
        cast(review_date + interval '{{ label_window_days }} days' as date) as label_known_on
    from reviews

),

labelled as (

    select
        customer_id,
        review_date,
        segment,
        region,
        product,
        age_band,
        credit_limit,
        balance,
        utilisation,
        days_past_due,
        n_late_payments_12m,
        tenure_months,
        income_band,
        income_band_ordinal,
        n_inquiries_6m,
        utilisation_change,
        utilisation_avg_3r,
        max_days_past_due_6r,
        label_known_on,
        case
            when label_known_on > {{ run_date_literal() }} then null
            when first_default_date > review_date and first_default_date <= label_known_on then 1
            else 0
        end as defaulted_90d
    from with_window

)

select * from labelled
