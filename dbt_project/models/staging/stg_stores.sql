with

source as (

    select * from {{ source('raw', 'stores') }}

),

renamed as (

    select
        cast(store_id as varchar) as store_id,
        cast(region as varchar) as region,
        cast(store_format as varchar) as store_format,
        cast(opened_on as date) as opened_on
    from source

)

select * from renamed
