-- Raw sales as of the run date: typed, renamed (stockout_flag -> is_stockout), nothing after run_date.
with

source as (

    select * from {{ source('raw', 'retail_sales') }}

),

renamed as (

    select
        cast(sales_date as date) as sales_date,
        cast(store_id as varchar) as store_id,
        cast(sku_id as varchar) as sku_id,
        cast(units_sold as bigint) as units_sold,
        cast(unit_price as double precision) as unit_price,
        cast(list_price as double precision) as list_price,
        cast(on_promotion as boolean) as on_promotion,
        cast(stockout_flag as boolean) as is_stockout
    from source

),

as_of as (

    select *
    from renamed
    where sales_date <= {{ run_date_literal() }}

)

select * from as_of
