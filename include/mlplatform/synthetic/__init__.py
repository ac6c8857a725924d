"""Seeded synthetic raw sources besides retail sales (registered in ``mlplatform.datagen.SOURCES``)."""
