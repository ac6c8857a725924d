{#-
    One row per day (column date_day, type date) from start_date through end_date inclusive.
    Arguments are SQL expressions (scalar subqueries allowed). generate_series over timestamps is
    valid in both DuckDB and Postgres; dispatch lets another adapter override it.
-#}
{% macro day_spine(start_date, end_date) %}
    {{- return(adapter.dispatch('day_spine', 'mlplatform')(start_date, end_date)) -}}
{% endmacro %}

{% macro default__day_spine(start_date, end_date) %}
    select cast(spine.date_day as date) as date_day
    from generate_series(
        cast({{ start_date }} as timestamp),
        cast({{ end_date }} as timestamp),
        interval '1 day'
    ) as spine (date_day)
{% endmacro %}
