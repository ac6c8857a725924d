-- Customer dimension as of the run date: the raw dimension also lists accounts opening later.
with

source as (

    select * from {{ source('risk', 'customers') }}

),

renamed as (

    select
        cast(customer_id as varchar) as customer_id,
        cast(segment as varchar) as segment,
        cast(region as varchar) as region,
        cast(product as varchar) as product,
        cast(opened_on as date) as opened_on,
        cast(age_band as varchar) as age_band
    from source

),

as_of as (

    select *
    from renamed
    where opened_on <= {{ run_date_literal() }}

)

select * from as_of
