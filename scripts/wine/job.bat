@echo off
rem job.bat: the worker command of scripts/wine-test.sh, run by dcworker.exe
rem through cmd.exe under Wine. Output: done:INPUT, or resumed:CHECKPOINT:INPUT
rem when it resumes a job. While the file %HOLD% exists, the first job
rem writes a checkpoint, records its number in %HOLD%.job, deletes %HOLD%
rem and never ends: the script then kills dcworker.
set /p INPUT=
>>"%DC_PROGRESS_FILE%" echo attempt %DC_ATTEMPT% resumed %DC_RESUMED% input %INPUT%
if "%DC_RESUMED%"=="1" goto resumed
if exist "%HOLD%" goto hold
echo done:%INPUT%
exit /b 0
:hold
>"%DC_CHECKPOINT_FILE%" echo started %INPUT%
>"%HOLD%.job" echo %DC_JOB_NUMBER%
del "%HOLD%"
:loop
ping -n 2 127.0.0.1 >nul
goto loop
:resumed
set /p CP=<"%DC_CHECKPOINT_FILE%"
echo resumed:%CP%:%INPUT%
exit /b 0
