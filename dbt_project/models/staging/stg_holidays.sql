-- The use case's holiday calendar (dbt var `holiday_calendar`, from the spec's `holidays:` section; the
-- land stage writes its rows to raw.holidays for every year the use case needs), one row per date.
{%- set calendar = var('holiday_calendar', 'US') | string %}
{#- The key is validated by the spec (a code of the holidays package); refuse anything that could end the
    SQL string it is quoted in. #}
{%- if calendar | length == 0 or calendar | length > 64 or "'" in calendar or "\\" in calendar %}
    {{ exceptions.raise_compiler_error(
        "dbt var 'holiday_calendar' must be a calendar key like 'US' or 'US-CA', got: " ~ calendar
    ) }}
{%- endif %}
with

source as (

    select * from {{ source('raw', 'holidays') }}

),

renamed as (

    select
        cast(holiday_date as date) as holiday_date,
        cast(holiday_name as varchar) as holiday_name
    from source
    where holiday_calendar = '{{ calendar }}'

)

select * from renamed
