-- US quarterly macro series (statsmodels macrodata) as of the run date: typed, nothing after run_date.
with

source as (

    select * from {{ source('evaluation', 'macro_quarterly') }}

),

renamed as (

    select
        cast(series_id as varchar) as series_id,
        cast(quarter_end_date as date) as quarter_end_date,
        cast(value as double precision) as value
    from source

),

as_of as (

    select *
    from renamed
    where quarter_end_date <= {{ run_date_literal() }}

)

select * from as_of
