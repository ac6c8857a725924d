-- Training and scoring features: one row per series and day through run_date.
-- lag_n = units_sold of the same series n days earlier (null before the series has n days of history).
-- rolling_* = statistics over the window ending at AND INCLUDING sales_date, null until the window is
-- complete: they contain the row's own target, so use them as features of a forecast origin only.
with

daily as (

    select * from {{ ref('int_series_daily_sales') }}

),

typed as (

    select
        series_id,
        store_id,
        sku_id,
        category,
        region,
        sales_date,
        is_stockout,
        unit_price,
        list_price,
        on_promotion,
        is_holiday,
        cast(units_sold as double precision) as units_sold
    from daily

),

features as (

    select
        series_id,
        store_id,
        sku_id,
        category,
        region,
        sales_date,
        units_sold,
        is_stockout,
        unit_price,
        list_price,
        1 - unit_price / nullif(list_price, 0) as discount_pct,
        case when on_promotion then 1 else 0 end as on_promotion,
        lag(units_sold, 1) over series_days as lag_1,
        lag(units_sold, 7) over series_days as lag_7,
        lag(units_sold, 14) over series_days as lag_14,
        lag(units_sold, 28) over series_days as lag_28,
        case
            when count(units_sold) over last_7_days = 7 then avg(units_sold) over last_7_days
        end as rolling_mean_7,
        case
            when count(units_sold) over last_28_days = 28 then avg(units_sold) over last_28_days
        end as rolling_mean_28,
        case
            when count(units_sold) over last_28_days = 28 then stddev_samp(units_sold) over last_28_days
        end as rolling_std_28,
        cast(extract(isodow from sales_date) as integer) as day_of_week,
        cast(extract(day from sales_date) as integer) as day_of_month,
        cast(extract(month from sales_date) as integer) as month,
        cast(is_holiday as integer) as is_holiday
    from typed
    window
        series_days as (partition by series_id order by sales_date),
        last_7_days as (
            partition by series_id order by sales_date rows between 6 preceding and current row
        ),
        last_28_days as (
            partition by series_id order by sales_date rows between 27 preceding and current row
        )

)

select * from features
