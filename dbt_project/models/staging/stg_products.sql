with

source as (

    select * from {{ source('raw', 'products') }}

),

renamed as (

    select
        cast(sku_id as varchar) as sku_id,
        cast(category as varchar) as category,
        cast(list_price as double precision) as base_list_price
    from source

)

select * from renamed
