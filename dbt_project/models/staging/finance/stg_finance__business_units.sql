with

source as (

    select * from {{ source('finance', 'business_units') }}

),

renamed as (

    select
        cast(business_unit as varchar) as business_unit,
        cast(business_unit_name as varchar) as business_unit_name,
        cast(segment as varchar) as segment,
        cast(weekend_trading as boolean) as has_weekend_trading
    from source

)

select * from renamed
