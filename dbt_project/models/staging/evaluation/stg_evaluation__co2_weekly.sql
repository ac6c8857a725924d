-- Weekly Mauna Loa CO2 (statsmodels co2) as of the run date: typed, nothing after run_date.
-- Weeks without a measurement stay rows with a null co2_ppm (nothing is filled in).
with

source as (

    select * from {{ source('evaluation', 'co2_weekly') }}

),

renamed as (

    select
        cast(series_id as varchar) as series_id,
        cast(week_end_date as date) as week_end_date,
        cast(co2_ppm as double precision) as co2_ppm
    from source

),

as_of as (

    select *
    from renamed
    where week_end_date <= {{ run_date_literal() }}

)

select * from as_of
