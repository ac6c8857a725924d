-- One row per day from the first posting date through run_date + horizon_days: the forecast dates need
-- their calendar (month/quarter-end windows, holidays) as much as the history does.
{%- set horizon_days = var('horizon_days', 90) | int %}
with

fiscal_days as (

    select * from {{ ref('int_finance__fiscal_days') }}

),

calendar as (

    select
        calendar_date,
        day_of_week,
        day_of_month,
        month,
        quarter,
        day_of_year,
        is_holiday,
        holiday_name,
        is_business_day,
        is_month_end_window,
        is_quarter_end_window,
        days_to_month_end,
        business_days_to_month_end
    from fiscal_days
    where calendar_date <= {{ run_date_literal() }} + {{ horizon_days }}

)

select * from calendar
