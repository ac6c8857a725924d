{#-
    The features and calendar marts of the evaluation use cases (bench/evaluation/use_cases/): public
    datasets of one value per series and period, each period dated by its LAST day (quarter end, month
    end, week-ending Saturday). The three marts would otherwise repeat each other line for line, so they
    are written once here; each mart passes its staging relation, column names and feature windows.

    period: 'quarter' | 'month' | 'week' (the frequency; the period-of-year column is <period>_of_year:
    quarter 1..4, month 1..12, ISO week 1..53).
-#}

{#-
    One row per series and period end up to run_date (the staging model applies the as-of filter) with
    the target and features known at that period end:
      lag_n          target n periods earlier in the same series (null before the series has n periods);
      rolling_mean_n mean of the observed targets over the n periods ending at AND INCLUDING the row,
                     null until the series has n periods (periods whose target is missing count as
                     periods but not in the mean). They contain the row's own target: origin features only.
-#}
{% macro evaluation_period_features(staging_relation, date_column, target, period, lags, rolling_windows) %}
with

history as (

    select * from {{ staging_relation }}

),

features as (

    select
        series_id,
        {{ date_column }},
        {{ target }},
        {%- for n in lags %}
        lag({{ target }}, {{ n }}) over series_periods as lag_{{ n }},
        {%- endfor %}
        {%- for n in rolling_windows %}
        case
            when count(*) over last_{{ n }}_periods = {{ n }} then avg({{ target }}) over last_{{ n }}_periods
        end as rolling_mean_{{ n }},
        {%- endfor %}
        {{ evaluation_period_of_year(date_column, period) }}
    from history
    window
        series_periods as (partition by series_id order by {{ date_column }}),
        {%- for n in rolling_windows %}
        last_{{ n }}_periods as (
            partition by series_id order by {{ date_column }} rows between {{ n - 1 }} preceding and current row
        ){{ "," if not loop.last }}
        {%- endfor %}

)

select * from features
{% endmacro %}


{#-
    One row per period end from the first period of history through run_date + horizon_days (var): the
    forecast's target periods need their calendar as much as the history does. Only period ends, because
    the platform keys every non-daily date by its period's last day. Month and quarter ends are computed
    on timestamps (date_trunc of a date is timestamptz on Postgres, tied to the session time zone).
-#}
{% macro evaluation_period_calendar(staging_relation, date_column, period) %}
{%- set last_day = run_date_literal() ~ " + " ~ (var('horizon_days', 90) | int) %}
{%- set first_period_end = "(select min(" ~ date_column ~ ") from " ~ staging_relation ~ ")" %}
with

{% if period == 'week' -%}
period_ends as (

    select cast(spine.period_end as date) as calendar_date
    from generate_series(
        cast({{ first_period_end }} as timestamp),
        cast({{ last_day }} as timestamp),
        interval '7 days'
    ) as spine (period_end)

),
{%- else -%}
{%- set step = "interval '3 months'" if period == 'quarter' else "interval '1 month'" %}
period_starts as (

    select spine.period_start
    from generate_series(
        date_trunc('{{ period }}', cast({{ first_period_end }} as timestamp)),
        cast({{ last_day }} as timestamp),
        {{ step }}
    ) as spine (period_start)

),

period_ends as (

    select cast(period_start + {{ step }} - interval '1 day' as date) as calendar_date
    from period_starts

),
{%- endif %}

calendar as (

    select
        calendar_date,
        {{ evaluation_period_of_year('calendar_date', period) }}
    from period_ends
    where calendar_date <= {{ last_day }}

)

select * from calendar
{% endmacro %}


{#- The period of the year a date falls in, named <period>_of_year (ISO week for 'week'). -#}
{% macro evaluation_period_of_year(date_column, period) %}
    {%- if period not in ('quarter', 'month', 'week') -%}
        {{ exceptions.raise_compiler_error("period must be quarter, month or week, got '" ~ period ~ "'") }}
    {%- endif -%}
    cast(extract({{ period }} from {{ date_column }}) as integer) as {{ period }}_of_year
{%- endmacro %}
