-- Training and scoring features of the revenue forecast: one row per series and day through run_date.
-- lag_n = revenue of the same series n days earlier (null before the series has n days of history).
-- rolling_mean_n = mean revenue over the n days ending at AND INCLUDING revenue_date, null until the
-- window is complete: they contain the row's own target, so use them as features of an origin only.
-- Calendar columns describe revenue_date itself (the forecaster joins dim_fiscal_calendar on the
-- target date for the days ahead).
with

daily as (

    select * from {{ ref('int_finance__daily_revenue') }}

),

fiscal_days as (

    select * from {{ ref('int_finance__fiscal_days') }}

),

joined as (

    select
        daily.series_id,
        daily.business_unit,
        daily.region,
        daily.segment,
        daily.revenue_date,
        daily.revenue,
        daily.n_postings,
        fiscal_days.day_of_week,
        fiscal_days.day_of_month,
        fiscal_days.month,
        fiscal_days.is_holiday,
        fiscal_days.is_business_day,
        fiscal_days.is_month_end_window,
        fiscal_days.is_quarter_end_window,
        fiscal_days.days_to_month_end,
        fiscal_days.business_days_to_month_end
    from daily
    left join fiscal_days
        on daily.revenue_date = fiscal_days.calendar_date

),

features as (

    select
        series_id,
        business_unit,
        region,
        segment,
        revenue_date,
        revenue,
        n_postings,
        lag(revenue, 1) over series_days as lag_1,
        lag(revenue, 7) over series_days as lag_7,
        lag(revenue, 28) over series_days as lag_28,
        lag(revenue, 91) over series_days as lag_91,
        lag(revenue, 364) over series_days as lag_364,
        case
            when count(revenue) over last_7_days = 7 then avg(revenue) over last_7_days
        end as rolling_mean_7,
        case
            when count(revenue) over last_28_days = 28 then avg(revenue) over last_28_days
        end as rolling_mean_28,
        case
            when count(revenue) over last_91_days = 91 then avg(revenue) over last_91_days
        end as rolling_mean_91,
        day_of_week,
        day_of_month,
        month,
        is_holiday,
        is_business_day,
        is_month_end_window,
        is_quarter_end_window,
        days_to_month_end,
        business_days_to_month_end
    from joined
    window
        series_days as (partition by series_id order by revenue_date),
        last_7_days as (
            partition by series_id order by revenue_date rows between 6 preceding and current row
        ),
        last_28_days as (
            partition by series_id order by revenue_date rows between 27 preceding and current row
        ),
        last_91_days as (
            partition by series_id order by revenue_date rows between 90 preceding and current row
        )

)

select * from features
