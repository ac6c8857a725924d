-- Reviews as of the run date with customer attributes, the customer's first known default and
-- history features over the customer's earlier reviews. A review on or after the customer's first
-- default is dropped: a defaulted account is no longer scored. Window features look backwards only.
with

reviews as (

    select * from {{ ref('stg_risk__credit_reviews') }}

),

customers as (

    select * from {{ ref('stg_risk__customers') }}

),

customer_defaults as (

    select * from {{ ref('int_risk__customer_defaults') }}

),

joined as (

    select
        reviews.customer_id,
        reviews.review_date,
        customers.segment,
        customers.region,
        customers.product,
        customers.age_band,
        reviews.credit_limit,
        reviews.balance,
        reviews.utilisation,
        reviews.days_past_due,
        reviews.n_late_payments_12m,
        reviews.tenure_months,
        reviews.income_band,
        reviews.n_inquiries_6m,
        customer_defaults.first_default_date
    from reviews
    left join customers
        on reviews.customer_id = customers.customer_id
    left join customer_defaults
        on reviews.customer_id = customer_defaults.customer_id

),

not_defaulted as (

    select *
    from joined
    where first_default_date is null or first_default_date > review_date

),

with_history as (

    select
        *,
        case income_band
            when '<20k' then 1
            when '20-40k' then 2
            when '40-70k' then 3
            when '70-120k' then 4
            when '120k+' then 5
        end as income_band_ordinal,
        lag(review_date) over customer_reviews as previous_review_date,
        utilisation - lag(utilisation) over customer_reviews as utilisation_change,
        avg(utilisation) over last_3_reviews as utilisation_avg_3r,
        max(days_past_due) over last_6_reviews as max_days_past_due_6r
    from not_defaulted
    window
        customer_reviews as (partition by customer_id order by review_date),
        last_3_reviews as (
            partition by customer_id order by review_date rows between 2 preceding and current row
        ),
        last_6_reviews as (
            partition by customer_id order by review_date rows between 5 preceding and current row
        )

)

select * from with_history
