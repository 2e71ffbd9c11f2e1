# How the admin writes dates and times (LANGUAGE_CODE en-us): to the second, with the market
# zone's name (TIME_ZONE is MARKET_TIMEZONE), so a fill at 09:30:05 is not shown as "9:30 a.m.".
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "D Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
