-- First default per customer as of the run date (a customer normally defaults once).
with

defaults as (

    select * from {{ ref('stg_risk__default_events') }}

),

per_customer as (

    select
        customer_id,
        min(default_date) as first_default_date,
        count(*) as n_default_events
    from defaults
    group by customer_id

)

select * from per_customer
