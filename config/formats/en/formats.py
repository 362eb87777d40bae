# Times in admin to the second, with their zone: ops compare attempts seconds apart ("Dec. 8, 2026, 12:54 a.m." cannot).
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
