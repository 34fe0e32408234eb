DROP TABLE progress;
DROP TABLE completions;
DROP TABLE lessons;
DROP TABLE courses;
