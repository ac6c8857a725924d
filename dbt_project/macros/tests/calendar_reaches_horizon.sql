{#-
    Fails when a calendar of period ends stops short of run_date + horizon_days (var) by a whole period
    or more (max_period_days: the longest period, e.g. 92 for quarters), or goes past it: every target
    period of the forecast needs its calendar row, and the platform reads nothing beyond that day.
-#}
{% test calendar_reaches_horizon(model, column_name, max_period_days) %}

    {%- set last_day = run_date_literal() ~ " + " ~ (var('horizon_days', 90) | int) %}

    select max({{ column_name }}) as last_date
    from {{ model }}
    having
        max({{ column_name }}) is null
        or max({{ column_name }}) <= {{ last_day }} - {{ max_period_days }}
        or max({{ column_name }}) > {{ last_day }}

{% endtest %}
