DROP TABLE entities;
