-- Monthly electrical-equipment orders index (statsmodels elec_equip) as of the run date: typed, nothing
-- after run_date.
with

source as (

    select * from {{ source('evaluation', 'elec_equip_monthly') }}

),

renamed as (

    select
        cast(series_id as varchar) as series_id,
        cast(month_end_date as date) as month_end_date,
        cast(orders_index as double precision) as orders_index
    from source

),

as_of as (

    select *
    from renamed
    where month_end_date <= {{ run_date_literal() }}

)

select * from as_of
