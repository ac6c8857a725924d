-- One row per day from the first sales date through run_date + horizon_days: the future dates a
-- forecast is made for need calendar features too.
with

sales as (

    select * from {{ ref('stg_retail_sales') }}

),

holidays as (

    select * from {{ ref('stg_holidays') }}

),

days as (

    {{ day_spine(
        "(select min(sales_date) from sales)",
        run_date_literal() ~ " + " ~ (var('horizon_days', 90) | int)
    ) }}

),

calendar as (

    select
        days.date_day as calendar_date,
        cast(extract(isodow from days.date_day) as integer) as day_of_week,
        cast(extract(day from days.date_day) as integer) as day_of_month,
        cast(extract(month from days.date_day) as integer) as month,
        cast(extract(week from days.date_day) as integer) as week_of_year,
        cast(extract(doy from days.date_day) as integer) as day_of_year,
        case when holidays.holiday_date is null then 0 else 1 end as is_holiday,
        holidays.holiday_name
    from days
    left join holidays
        on days.date_day = holidays.holiday_date

)

select * from calendar
