{#-
    The as-of date of the run (dbt var `run_date`, YYYY-MM-DD). Required: every model that filters or
    extends by date calls this macro, so a run without the var fails at compile time with a clear
    message instead of silently using all raw data. At parse time (no `execute`) it returns a
    placeholder so `dbt parse` works without vars.
-#}
{% macro run_date() %}
    {%- set value = var('run_date', none) -%}
    {%- if not execute and value is none -%}
        {{ return('1970-01-01') }}
    {%- endif -%}
    {%- if value is none or value | string | trim == '' -%}
        {{ exceptions.raise_compiler_error(
            "dbt var 'run_date' is required (the as-of date, YYYY-MM-DD): "
            ~ "pass --vars '{\"run_date\": \"2025-01-31\"}'"
        ) }}
    {%- endif -%}
    {%- set text = value | string | trim -%}
    {%- set digits = text.replace('-', '') -%}
    {%- if text | length != 10 or text[4] != '-' or text[7] != '-' or not digits.isdigit() -%}
        {{ exceptions.raise_compiler_error(
            "dbt var 'run_date' must be an ISO date YYYY-MM-DD, got '" ~ text ~ "'"
        ) }}
    {%- endif -%}
    {{ return(text) }}
{% endmacro %}

{#- The as-of date as a SQL date literal. -#}
{% macro run_date_literal() %}
    {{- return("cast('" ~ run_date() ~ "' as date)") -}}
{% endmacro %}
