-- Default events as of the run date: a default after run_date is not known yet and must stay invisible.
with

source as (

    select * from {{ source('risk', 'default_events') }}

),

renamed as (

    select
        cast(default_date as date) as default_date,
        cast(customer_id as varchar) as customer_id
    from source

),

as_of as (

    select *
    from renamed
    where default_date <= {{ run_date_literal() }}

)

select * from as_of
