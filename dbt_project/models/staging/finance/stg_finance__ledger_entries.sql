-- Ledger postings as of the run date: typed, nothing after run_date.
with

source as (

    select * from {{ source('finance', 'ledger_entries') }}

),

renamed as (

    select
        cast(posting_date as date) as posting_date,
        cast(entry_id as varchar) as entry_id,
        cast(business_unit as varchar) as business_unit,
        cast(region as varchar) as region,
        cast(account as varchar) as account,
        cast(amount as double precision) as amount,
        cast(currency as varchar) as currency
    from source

),

as_of as (

    select *
    from renamed
    where posting_date <= {{ run_date_literal() }}

)

select * from as_of
