-- One row per day from the first posting date through the END OF THE MONTH of run_date + horizon_days,
-- with the business-day flags finance revenue depends on. Business day = Monday..Friday and not a
-- holiday of the use case's calendar (stg_holidays; the synthetic ledger uses the same dates and rule).
-- The spine runs to the month end on purpose: "last 3 business days of the month" is only known once
-- the whole month is in the spine, so the last forecast month is flagged correctly too. Marts cut it to
-- their range.
{%- set horizon_days = var('horizon_days', 90) | int %}
{#- Month arithmetic on timestamp (not date): Postgres' date_trunc of a date returns timestamptz, which
    would tie the result to the session time zone; on timestamp it is the same on DuckDB and Postgres. #}
{%- set spine_end = "cast(date_trunc('month', cast(" ~ run_date_literal() ~ " + " ~ horizon_days
    ~ " as timestamp)) + interval '1 month' - interval '1 day' as date)" %}
{#- Business days at the end of each month that form the month-end window (generator: MONTH_END_WINDOW). #}
{%- set window_days = 3 %}
with

ledger as (

    select * from {{ ref('stg_finance__ledger_entries') }}

),

holidays as (

    select * from {{ ref('stg_holidays') }}

),

days as (

    {{ day_spine("(select min(posting_date) from ledger)", spine_end) }}

),

calendar as (

    select
        days.date_day as calendar_date,
        cast(extract(isodow from days.date_day) as integer) as day_of_week,
        cast(extract(day from days.date_day) as integer) as day_of_month,
        cast(extract(month from days.date_day) as integer) as month,
        cast(extract(quarter from days.date_day) as integer) as quarter,
        cast(extract(doy from days.date_day) as integer) as day_of_year,
        cast(
            date_trunc('month', cast(days.date_day as timestamp))
            + interval '1 month' - interval '1 day' as date
        ) as month_end_date,
        case when holidays.holiday_date is null then 0 else 1 end as is_holiday,
        holidays.holiday_name
    from days
    left join holidays
        on days.date_day = holidays.holiday_date

),

business_days as (

    select
        *,
        case when day_of_week <= 5 and is_holiday = 0 then 1 else 0 end as is_business_day
    from calendar

),

month_end_distance as (

    select
        *,
        cast(month_end_date - calendar_date as integer) as days_to_month_end,
        -- business days strictly after this day within its month (0 on the last business day)
        cast(coalesce(sum(is_business_day) over (
            partition by month_end_date
            order by calendar_date desc
            rows between unbounded preceding and 1 preceding
        ), 0) as integer) as business_days_to_month_end
    from business_days

),

flagged as (

    select
        calendar_date,
        day_of_week,
        day_of_month,
        month,
        quarter,
        day_of_year,
        month_end_date,
        is_holiday,
        holiday_name,
        is_business_day,
        days_to_month_end,
        business_days_to_month_end,
        case
            when is_business_day = 1 and business_days_to_month_end < {{ window_days }} then 1 else 0
        end as is_month_end_window,
        case
            when
                is_business_day = 1
                and business_days_to_month_end < {{ window_days }}
                and month in (3, 6, 9, 12)
                then 1
            else 0
        end as is_quarter_end_window
    from month_end_distance

)

select * from flagged
