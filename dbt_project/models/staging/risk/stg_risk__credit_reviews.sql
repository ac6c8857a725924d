-- Credit reviews as of the run date: typed, nothing after run_date.
with

source as (

    select * from {{ source('risk', 'credit_reviews') }}

),

renamed as (

    select
        cast(review_date as date) as review_date,
        cast(customer_id as varchar) as customer_id,
        cast(credit_limit as double precision) as credit_limit,
        cast(balance as double precision) as balance,
        cast(utilisation as double precision) as utilisation,
        cast(days_past_due as integer) as days_past_due,
        cast(n_late_payments_12m as integer) as n_late_payments_12m,
        cast(income_band as varchar) as income_band,
        cast(tenure_months as integer) as tenure_months,
        cast(n_inquiries_6m as integer) as n_inquiries_6m
    from source

),

as_of as (

    select *
    from renamed
    where review_date <= {{ run_date_literal() }}

)

select * from as_of
