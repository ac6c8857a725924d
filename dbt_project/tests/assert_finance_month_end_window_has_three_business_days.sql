-- Every month of the fiscal spine that starts inside it has exactly 3 month-end window days, all of
-- them business days, and quarter-end window days only in March, June, September and December.
with

fiscal_days as (

    select * from {{ ref('int_finance__fiscal_days') }}

),

months as (

    select
        month_end_date,
        month,
        min(day_of_month) as first_day_of_month,
        sum(is_month_end_window) as n_window_days,
        sum(is_month_end_window * (1 - is_business_day)) as n_window_non_business_days,
        sum(is_quarter_end_window) as n_quarter_end_days
    from fiscal_days
    group by month_end_date, month

)

select *
from months
where
    (first_day_of_month = 1 and n_window_days != 3)
    or n_window_non_business_days > 0
    or (month not in (3, 6, 9, 12) and n_quarter_end_days > 0)
    or (month in (3, 6, 9, 12) and n_quarter_end_days != n_window_days)
