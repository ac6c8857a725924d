-- Complete daily grid per series (store x SKU) from its first sale through run_date, joined with sales,
-- store and product attributes and the holiday flag. The grid makes "n rows back" equal "n days back"
-- for the lag/rolling features; a day missing in raw data shows up as null units (and fails a test).
with

sales as (

    select * from {{ ref('stg_retail_sales') }}

),

stores as (

    select * from {{ ref('stg_stores') }}

),

products as (

    select * from {{ ref('stg_products') }}

),

holidays as (

    select * from {{ ref('stg_holidays') }}

),

series as (

    select
        store_id,
        sku_id,
        min(sales_date) as first_sales_date
    from sales
    group by store_id, sku_id

),

days as (

    {{ day_spine("(select min(sales_date) from sales)", run_date_literal()) }}

),

grid as (

    select
        series.store_id,
        series.sku_id,
        days.date_day as sales_date
    from series
    inner join days
        on series.first_sales_date <= days.date_day

),

joined as (

    select
        grid.store_id || '-' || grid.sku_id as series_id,
        grid.store_id,
        grid.sku_id,
        products.category,
        stores.region,
        stores.store_format,
        grid.sales_date,
        sales.units_sold,
        sales.is_stockout,
        sales.unit_price,
        sales.list_price,
        sales.on_promotion,
        case when holidays.holiday_date is null then 0 else 1 end as is_holiday
    from grid
    left join sales
        on
            grid.store_id = sales.store_id
            and grid.sku_id = sales.sku_id
            and grid.sales_date = sales.sales_date
    left join stores
        on grid.store_id = stores.store_id
    left join products
        on grid.sku_id = products.sku_id
    left join holidays
        on grid.sales_date = holidays.holiday_date

)

select * from joined
